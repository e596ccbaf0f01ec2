#!/usr/bin/env python3
"""A consumer in Python: attaches to the log NAME at its oldest record and prints each record as
"OFFSET<TAB>TEXT", waiting for more until COUNT records were printed (if given) or nothing
arrives for a second. A lap is reported and the consumer goes on a quarter ring past the oldest
record.

    PYTHONPATH=build/bindings/python python3 examples/python/consumer.py quotes [COUNT]
"""
import sys

import shmlog


def main(argv):
    if len(argv) not in (2, 3):
        print(f"usage: {argv[0]} NAME [COUNT]", file=sys.stderr)
        return 2
    count = int(argv[2]) if len(argv) == 3 else None
    printed = 0
    try:
        with shmlog.Reader.attach(argv[1], start="oldest") as reader:
            while count is None or printed < count:
                try:
                    record = reader.poll_record()
                except shmlog.Lapped:
                    report = reader.recover_from_lap("oldest_safe")
                    print(f"consumer.py: lapped, {report['bytes_lost']} bytes lost",
                          file=sys.stderr)
                    continue
                except shmlog.HistoryChanged:
                    if not reader.resync():
                        reader.seek_oldest()  # no state to keep: read the new history
                    continue
                if record is None:
                    if not reader.wait(timeout=1.0):  # quiet for a second: done
                        break
                    continue
                print(f"{record.offset}\t{record.data.decode(errors='replace')}", flush=True)
                printed += 1
    except shmlog.Error as e:
        print(f"consumer.py: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
