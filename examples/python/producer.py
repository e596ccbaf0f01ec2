#!/usr/bin/env python3
"""A producer in Python: creates the log NAME (1 MiB) unless it exists, opens it as its writer
and appends each argument as a record, or each line of its standard input if there is none.

    PYTHONPATH=build/bindings/python python3 examples/python/producer.py quotes "AAPL 189.91"
"""
import sys

import shmlog


def main(argv):
    if len(argv) < 2:
        print(f"usage: {argv[0]} NAME [RECORD...]", file=sys.stderr)
        return 2
    name = argv[1]
    try:
        try:
            writer = shmlog.Writer.open(name)
        except shmlog.Error as e:
            if e.code != "not_found":
                raise
            writer = shmlog.Writer.create(name, capacity=1 << 20)
        with writer:
            if len(argv) > 2:
                for record in argv[2:]:
                    writer.append(record.encode())
            else:
                for line in sys.stdin.buffer:
                    data = line.rstrip(b"\n")
                    # Built in place in the ring: a claim, filled, then committed.
                    with writer.claim(len(data)) as claim:
                        claim.payload[:] = data
                        claim.commit()
    except shmlog.Error as e:
        print(f"producer.py: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
