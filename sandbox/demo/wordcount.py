#!/usr/bin/env python3
"""wordcount.py - an example exec task for valet (Python 3 standard library only).

Declare it in the config:

    [task.wordcount]
    command = /usr/bin/python3 /usr/lib/valet/tasks/wordcount.py

valetd writes {"params": <task_params>, "previous": <previous result or null>}
to the task's stdin. This task counts the words and lines of params.text and
prints {"words": N, "lines": M} on stdout. When params has no "text" and the
previous pipeline job returned an object with a "text" string, that is counted
instead, so the task also works as a pipeline step.

Bad input is reported the exec-task way: print {"error": "..."} and exit 0;
valetd fails the job with that message.
"""
import json
import sys


def count(text):
    # Lines as a person counts them: "a\nb" and "a\nb\n" both have 2 lines.
    return {"words": len(text.split()), "lines": len(text.splitlines())}


def pick_text(request):
    if not isinstance(request, dict):
        raise ValueError("input must be a JSON object")
    params = request.get("params")
    if params is None:
        params = {}
    if not isinstance(params, dict):
        raise ValueError("params must be an object")
    if "text" in params:
        text = params["text"]
    else:
        previous = request.get("previous")
        if not (isinstance(previous, dict) and "text" in previous):
            raise ValueError('invalid task_params: "text" required')
        text = previous["text"]
    if not isinstance(text, str):
        raise ValueError('invalid task_params: "text" must be a string')
    return text


def main():
    try:
        # Bytes in: json detects UTF-8/16/32 whatever the locale says.
        request = json.loads(sys.stdin.buffer.read())
        result = count(pick_text(request))
    except json.JSONDecodeError as e:
        result = {"error": "invalid input: %s" % e}
    except (ValueError, UnicodeDecodeError) as e:
        result = {"error": str(e)}
    json.dump(result, sys.stdout)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
