/*
 * wordcount.c - the demo exec task: counts the words and lines of a text.
 *
 * An exec task is any program: valetd writes {"params": <task_params>,
 * "previous": <previous result or null>} to its stdin and takes the JSON
 * it prints on stdout as the result. This one counts params.text - or,
 * when params has no "text" and the previous pipeline job returned an
 * object with a "text" string, that one, so that it also works as a
 * pipeline step - and prints {"words": N, "lines": M}. Bad input is
 * reported the exec-task way: print {"error": "..."} and exit 0; valetd
 * fails the job with that message.
 *
 * It is C, built by make next to the demo plugin, so that `make run` needs
 * nothing a minimal system lacks (an interpreter, say): it links jansson,
 * which valet needs anyway. Words are what Python's str.split() finds
 * (runs of anything but Unicode white space), lines what a person counts
 * ("a\nb" and "a\nb\n" both have 2; str.splitlines()'s line ends).
 *
 *     [task.wordcount]
 *     command = /usr/lib/valet/tasks/wordcount
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include <jansson.h>

/* The next code point of UTF-8 text s[*i..n) (jansson checked it). */
static uint32_t next_code_point(const unsigned char *s, size_t n, size_t *i)
{
	uint32_t c = s[(*i)++];
	int more = c >= 0xf0 ? 3 : c >= 0xe0 ? 2 : c >= 0xc0 ? 1 : 0;

	c &= more == 3 ? 0x07 : more == 2 ? 0x0f : more == 1 ? 0x1f : 0x7f;
	while (more-- > 0 && *i < n)
		c = c << 6 | (s[(*i)++] & 0x3f);
	return c;
}

/* Line ends: Python's str.splitlines() ("\r\n" is one, see count()). */
static bool is_line_end(uint32_t c)
{
	return (c >= 0x0a && c <= 0x0d) || (c >= 0x1c && c <= 0x1e) || c == 0x85 || c == 0x2028 ||
	       c == 0x2029;
}

/* White space: Python's str.isspace(). */
static bool is_space(uint32_t c)
{
	return (c >= 0x09 && c <= 0x0d) || (c >= 0x1c && c <= 0x20) || c == 0x85 || c == 0xa0 ||
	       c == 0x1680 || (c >= 0x2000 && c <= 0x200a) || c == 0x2028 || c == 0x2029 ||
	       c == 0x202f || c == 0x205f || c == 0x3000;
}

static json_t *count(const char *text, size_t n)
{
	const unsigned char *s = (const unsigned char *)text;
	json_int_t words = 0, lines = 0;
	bool in_word = false, line_open = false;
	uint32_t prev = 0;

	for (size_t i = 0; i < n;) {
		uint32_t c = next_code_point(s, n, &i);

		if (is_space(c))
			in_word = false;
		else if (!in_word)
			in_word = true, words++;
		if (is_line_end(c)) {
			if (!(prev == '\r' && c == '\n')) /* "\r\n" ends one line */
				lines++;
			line_open = false;
		} else {
			line_open = true;
		}
		prev = c;
	}
	return json_pack("{s:I, s:I}", "words", words, "lines", lines + line_open);
}

/* The text to count, or NULL with *error set. */
static json_t *pick_text(json_t *request, const char **error)
{
	json_t *params, *previous, *text;

	if (!json_is_object(request)) {
		*error = "input must be a JSON object";
		return NULL;
	}
	params = json_object_get(request, "params");
	if (params && !json_is_null(params) && !json_is_object(params)) {
		*error = "params must be an object";
		return NULL;
	}
	text = json_object_get(params, "text");
	if (!text) {
		previous = json_object_get(request, "previous");
		text = json_object_get(previous, "text");
		if (!json_is_object(previous) || !text) {
			*error = "invalid task_params: \"text\" required";
			return NULL;
		}
	}
	if (!json_is_string(text)) {
		*error = "invalid task_params: \"text\" must be a string";
		return NULL;
	}
	return text;
}

int main(void)
{
	json_error_t jerr;
	json_t *request = json_loadf(stdin, JSON_ALLOW_NUL, &jerr), *result, *text;
	const char *error = NULL;

	if (!request)
		result = json_pack("{s:s+}", "error", "invalid input: ", jerr.text);
	else if ((text = pick_text(request, &error)))
		result = count(json_string_value(text), json_string_length(text));
	else
		result = json_pack("{s:s}", "error", error);
	if (!result || json_dumpf(result, stdout, JSON_PRESERVE_ORDER) < 0 || puts("") == EOF ||
	    fflush(stdout) == EOF)
		return 1;
	json_decref(result);
	json_decref(request);
	return 0;
}
