#!/usr/bin/env python3
"""Write the seed corpus of fuzz_frame (tests/fuzz/corpus/frame): what job
children write, in the harness's input layout (see fuzz_frame.c):
flags, chunk size - 1, stdout length, stderr length (16-bit little
endian), stdout, stderr, then the frame channel. A frame is
sandbox/frame.h's header (uint32 len, uint16 type, uint16 index, native =
little endian here) and len payload bytes; a RESULT payload is a uint32
error length, the error text, then the result JSON (sandbox/taskrun.c).

Run from anywhere: python3 tests/fuzz/frame_seeds.py. The corpus' regress-*
files are not written here: they are the inputs that found a bug, kept as
libFuzzer wrote them.
"""
import os
import struct

START, RESULT, SETUP_ERROR, SYSCALL = 1, 2, 3, 4
NJOBS1, NJOBS2, NJOBS3, EXEC, EXIT1, SMALL_RESULT, SMALL_OUTPUT = 1, 2, 3, 4, 8, 16, 32


def frame(ftype, index=0, payload=b"", length=None):
    n = len(payload) if length is None else length
    return struct.pack("<IHH", n, ftype, index) + payload


def result(index, result_json=b"", error=b""):
    return frame(RESULT, index, struct.pack("<I", len(error)) + error + result_json)


def seed(flags, frames=b"", out=b"", err=b"", chunk=256):
    return struct.pack("<BBHH", flags, chunk - 1, len(out), len(err)) + out + err + frames


SEEDS = {
    # C tasks: one job, a pipeline of three in one child, the task's error.
    "c-one-job": seed(NJOBS1, frame(START, 0) + result(0, b'{"sum":3}')),
    "c-pipeline-3": seed(NJOBS3, b"".join(frame(START, i) + result(i, b'{"i":%d}' % i)
                                          for i in range(3)), chunk=7),
    "c-task-error": seed(NJOBS2, frame(START, 0) + result(0, b'{"partial":true}',
                                                           b"a must not be negative")),
    "c-error-only": seed(NJOBS1 | EXIT1, frame(START, 0) + result(0, b"", b"failed \xc3\xa9")),
    "c-null-result": seed(NJOBS1, frame(START, 0) + result(0, b"null")),
    "c-byte-by-byte": seed(NJOBS2, frame(START, 0) + result(0, b"[1,2,3]") + frame(START, 1) +
                           result(1, b'"x"'), chunk=1),
    # What the child may get wrong or lie about.
    "c-truncated-result": seed(NJOBS1, frame(START, 0) + frame(RESULT, 0, b"\x01\x00")),
    "c-error-len-lies": seed(NJOBS1, frame(START, 0) +
                             frame(RESULT, 0, struct.pack("<I", 1000) + b"short")),
    "c-bad-json": seed(NJOBS1, frame(START, 0) + result(0, b'{"a":')),
    "c-bad-utf8-error": seed(NJOBS1, frame(START, 0) + result(0, b"{}", b"\xff\xfe")),
    "c-two-results": seed(NJOBS2, frame(START, 0) + result(0, b"1") + result(0, b"2")),
    "c-skip-a-job": seed(NJOBS3, frame(START, 0) + result(0, b"1") + frame(START, 2)),
    "c-start-after-error": seed(NJOBS2, frame(START, 0) + result(0, b"1", b"e") +
                                frame(START, 1)),
    "c-unknown-type": seed(NJOBS1, frame(START, 0) + frame(9, 0, b"??")),
    "c-huge-len": seed(NJOBS1 | SMALL_RESULT, frame(START, 0) +
                       frame(RESULT, 0, b"\x00" * 16, length=0xFFFFFFF0)),
    "c-over-cap": seed(NJOBS1 | SMALL_RESULT, frame(START, 0) +
                       frame(RESULT, 0, b"", length=1024 + 65536 + 1) + b"junk" * 8),
    "c-partial-header": seed(NJOBS1, frame(START, 0) + b"\x05\x00"),
    "c-output": seed(NJOBS1 | SMALL_OUTPUT, frame(START, 0) + result(0, b"{}"),
                     out=b"printf from the task\n" * 60),
    # Syscall and setup reports (from the SIGSYS handler, from sbx_fail()).
    "syscall-socket": seed(NJOBS1, frame(START, 0) + frame(SYSCALL, 0, struct.pack("<i", 41))),
    "syscall-unknown": seed(NJOBS1, frame(SYSCALL, 0, struct.pack("<i", -7)) +
                            frame(SYSCALL, 0, struct.pack("<i", 0x7fffffff))),
    "syscall-wrong-size": seed(NJOBS1, frame(SYSCALL, 0, b"\x29\x00")),
    "setup-error": seed(NJOBS1 | EXIT1, frame(SETUP_ERROR, 0, b"seccomp".ljust(24, b"\x00") +
                                              struct.pack("<i", 1))),
    "setup-error-unterminated": seed(NJOBS1 | EXIT1, frame(SETUP_ERROR, 0, b"s" * 24 +
                                                           struct.pack("<i", 99999))),
    # A pre-forked child that has not been given a job yet.
    "warm-setup-error": seed(0, frame(SETUP_ERROR, 0, b"setuid".ljust(24, b"\x00") +
                                      struct.pack("<i", 1))),
    "warm-speaks-early": seed(0, frame(START, 0)),
    # Exec tasks: stdout is the result, stderr's tail explains an exit.
    "exec-result": seed(NJOBS1 | EXEC, out=b'{"words": 3}\n', err=b"warning: x\n"),
    "exec-error-result": seed(NJOBS1 | EXEC, out=b'{"error": "bad input"}'),
    "exec-exit-1": seed(NJOBS1 | EXEC | EXIT1, err=b"Traceback\n  line 1\nValueError: \x1b[31mno\n"),
    "exec-not-json": seed(NJOBS1 | EXEC, out=b"hello"),
    "exec-result-too-big": seed(NJOBS1 | EXEC | SMALL_RESULT, out=b"[" + b"1," * 600 + b"1]"),
    "exec-output-cap": seed(NJOBS1 | EXEC | SMALL_OUTPUT, out=b"{}", err=b"e" * 1500, chunk=100),
    "exec-frames": seed(NJOBS1 | EXEC, frame(START, 0) + result(0, b"{}"), out=b"{}"),
}


def main():
    out = os.path.join(os.path.dirname(os.path.abspath(__file__)), "corpus", "frame")
    os.makedirs(out, exist_ok=True)
    for name, data in SEEDS.items():
        with open(os.path.join(out, name), "wb") as f:
            f.write(data)


if __name__ == "__main__":
    main()
