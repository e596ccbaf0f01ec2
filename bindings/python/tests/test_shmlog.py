"""The Python module `shmlog` (bindings/python): writers and readers through every read outcome,
claims, iteration, errors, wait() releasing the GIL, and a writer in another process.

Run by ctest with PYTHONPATH set to the module's build directory:
    python3 -m unittest discover -s bindings/python/tests
"""
import os
import signal
import subprocess
import sys
import threading
import time
import unittest

import shmlog


class LogTestCase(unittest.TestCase):
    """Each test gets a log name of its own (pid and test), removed before and after."""

    def setUp(self):
        self.name = f"py-test-{os.getpid()}-{self._testMethodName}"[:200]
        self._remove()
        self.addCleanup(self._remove)

    def _remove(self):
        shmlog.destroy(self.name)


class WriteAndRead(LogTestCase):
    def test_bytes_like_records_in_order_with_offsets_and_types(self):
        with shmlog.Writer.create(self.name, capacity=1 << 16) as w:
            self.assertEqual(w.capacity, 1 << 16)
            self.assertEqual(w.max_payload, (1 << 14) - 8)
            self.assertEqual(w.append(b"hello"), 0)
            self.assertEqual(w.append(bytearray(b"array")), 16)
            self.assertEqual(w.append(memoryview(b"xxviewxx")[2:6], type=9), 32)
            self.assertEqual(w.append(b""), 48)
            self.assertEqual(w.master_offset, 56)
            with shmlog.Reader.attach(self.name, start="oldest", label="py") as r:
                self.assertEqual(r.poll(), b"hello")
                self.assertEqual(r.poll_record(), shmlog.Record(16, 32, 1, b"array"))
                rec = r.poll_record()
                self.assertEqual((rec.offset, rec.type, rec.data), (32, 9, b"view"))
                self.assertEqual(r.poll(), b"")
                self.assertIsNone(r.poll())
                self.assertIsNone(r.poll_record())
                self.assertEqual(r.offset, 56)
                self.assertEqual(r.replid, w.replid)
                self.assertEqual(len(r.replid), 40)
        self.assertTrue(w.closed)

    def test_reader_attached_at_latest_sees_only_what_follows(self):
        with shmlog.Writer.create(self.name) as w:
            w.append(b"before")
            with shmlog.Reader.attach(self.name) as r:
                self.assertIsNone(r.poll())
                w.append(b"after")
                self.assertEqual(r.poll(), b"after")

    def test_poll_into_a_buffer_and_too_small_consumes_nothing(self):
        with shmlog.Writer.create(self.name) as w, \
                shmlog.Reader.attach(self.name, start="oldest") as r:
            w.append(b"x" * 100)
            small = bytearray(10)
            with self.assertRaises(shmlog.TooSmall) as cm:
                r.poll_into(small)
            self.assertEqual(cm.exception.needed_size, 100)
            self.assertEqual(cm.exception.code, "too_small")
            self.assertEqual(r.offset, 0)
            buf = bytearray(128)
            self.assertEqual(r.poll_into(buf), 100)
            self.assertEqual(bytes(buf[:100]), b"x" * 100)
            w.append(b"into a view")
            view = memoryview(buf)[8:]
            self.assertEqual(r.poll_into(view), 11)
            self.assertEqual(bytes(buf[8:19]), b"into a view")
            self.assertIsNone(r.poll_into(buf))
            with self.assertRaises(TypeError):  # not writable
                r.poll_into(b"read-only")

    def test_iteration_drains_and_follow_waits(self):
        with shmlog.Writer.create(self.name) as w, \
                shmlog.Reader.attach(self.name, start="oldest") as r:
            for i in range(10):
                w.append(b"%d" % i)
            self.assertEqual(list(r), [b"%d" % i for i in range(10)])
            self.assertEqual(list(r), [])  # caught up: the iteration ends at once
            w.append(b"more")
            self.assertEqual(list(r.follow(idle=0.01)), [b"more"])

    def test_wait_times_out_and_sees_a_published_record(self):
        with shmlog.Writer.create(self.name) as w, shmlog.Reader.attach(self.name) as r:
            self.assertFalse(r.wait(timeout=0.001))
            self.assertFalse(r.wait(0))
            w.append(b"x")
            self.assertTrue(r.wait())
            self.assertTrue(r.wait(timeout=0))
            with self.assertRaises(ValueError):
                r.wait(timeout=-1)


class Claims(LogTestCase):
    def test_commit_publishes_only_the_bytes_used(self):
        with shmlog.Writer.create(self.name) as w, \
                shmlog.Reader.attach(self.name, start="oldest") as r:
            with w.claim(64) as c:
                self.assertTrue(c.pending)
                self.assertEqual(c.offset, 0)
                self.assertEqual(len(c.payload), 64)
                c.payload[:5] = b"built"
                view = c.payload
                self.assertEqual(c.commit(5), 0)
            self.assertFalse(c.pending)
            self.assertEqual(r.poll(), b"built")
            # The claim's view was released: it cannot write into the ring after the commit.
            with self.assertRaises(ValueError):
                view[0] = 0
            with self.assertRaises(ValueError):
                c.commit()

    def test_a_claim_left_uncommitted_is_aborted(self):
        with shmlog.Writer.create(self.name) as w, \
                shmlog.Reader.attach(self.name, start="oldest") as r:
            with w.claim(16) as c:
                c.payload[:4] = b"lost"
            self.assertFalse(c.pending)
            with self.assertRaises(RuntimeError), w.claim(16) as c:
                c.payload[:4] = b"lost"
                raise RuntimeError("the with block fails")
            self.assertEqual(w.master_offset, 0)
            self.assertIsNone(r.poll())
            with w.claim(8) as c:
                memoryview(c)[:2] = b"ok"  # the claim is a buffer itself
                c.commit(2)
            self.assertEqual(r.poll(), b"ok")

    def test_one_claim_at_a_time(self):
        with shmlog.Writer.create(self.name) as w:
            c = w.claim(8)
            with self.assertRaises(shmlog.Error) as cm:
                w.append(b"x")
            self.assertEqual(cm.exception.code, "claim_pending")
            with self.assertRaises(shmlog.Error) as cm:  # more than claimed: it stays open
                c.commit(9)
            self.assertEqual(cm.exception.code, "invalid_argument")
            self.assertTrue(c.pending)
            c.abort()
            self.assertEqual(w.append(b"x"), 0)

    def test_commit_refuses_while_the_payload_is_exported(self):
        with shmlog.Writer.create(self.name) as w:
            c = w.claim(8)
            held = memoryview(c.payload)  # a buffer exported by the claim's view
            with self.assertRaises(BufferError):
                c.commit()
            self.assertTrue(c.pending)
            held.release()
            self.assertEqual(c.commit(), 0)

    def test_a_dropped_claim_is_aborted_and_close_waits_for_its_views(self):
        with shmlog.Writer.create(self.name) as w:
            c = w.claim(8)
            c.payload[:1] = b"x"
            del c  # nothing refers to it any more: aborted, as in C++
            self.assertEqual(w.append(b"next"), 0)
            c = w.claim(8)
            held = memoryview(c)
            with self.assertRaises(BufferError):
                w.close()
            self.assertFalse(w.closed)
            del held
            w.close()
            self.assertTrue(w.closed)
            self.assertFalse(c.pending)


class Outcomes(LogTestCase):
    def test_lap_is_an_exception_and_the_reader_recovers(self):
        with shmlog.Writer.create(self.name, capacity=4096) as w, \
                shmlog.Reader.attach(self.name, start="oldest") as r:
            for i in range(100):
                w.append(bytes([65 + i % 26]) * 200)
            with self.assertRaises(shmlog.Lapped) as cm:
                r.poll()
            lap = cm.exception
            self.assertIsInstance(lap, shmlog.Error)
            self.assertEqual(lap.wanted_offset, 0)
            self.assertGreater(lap.oldest_offset, 0)
            self.assertEqual(lap.bytes_lost, lap.oldest_offset)
            self.assertEqual(lap.master_offset, w.master_offset)
            self.assertEqual(r.offset, 0)  # a lap does not move the reader
            with self.assertRaises(shmlog.Lapped):  # and says so again until it recovers
                list(r)
            report = r.recover_from_lap("oldest")
            self.assertEqual(report["wanted_offset"], 0)
            self.assertEqual(r.offset, report["resume_offset"])
            self.assertEqual(r.lapped_count, 1)
            records = list(r)
            self.assertGreater(len(records), 1)
            self.assertEqual(records[-1], bytes([65 + 99 % 26]) * 200)
            self.assertEqual(r.offset, w.master_offset)
            with self.assertRaises(ValueError):
                r.recover_from_lap("newest")

    def test_history_change_is_an_exception_and_resync_decides(self):
        w = shmlog.Writer.create(self.name)
        w.append(b"one")
        w.append(b"two")
        third = w.append(b"three")
        history = w.replid
        w.close()
        with shmlog.Reader.attach(self.name, start="oldest") as r:
            self.assertEqual([r.poll(), r.poll()], [b"one", b"two"])
            # The producer's state holds the log up to `third`: the log branches there.
            with shmlog.Writer.open(self.name, state_replid=history, state_offset=third) as w2:
                self.assertNotEqual(w2.replid, history)
                with self.assertRaises(shmlog.HistoryChanged):
                    r.poll()
                self.assertTrue(r.resync())
                self.assertEqual(r.replid, w2.replid)
                w2.append(b"THREE")
                self.assertEqual(r.poll_record(), shmlog.Record(third, third + 16, 1, b"THREE"))
            # A state of a history the log never had: nothing is shared.
            with shmlog.Writer.open(self.name, state_replid="ab" * 20) as w3:
                with self.assertRaises(shmlog.HistoryChanged):
                    r.poll()
                self.assertFalse(r.resync())
                r.seek_latest()
                w3.append(b"new")
                self.assertEqual(r.poll(), b"new")
            with self.assertRaises(ValueError):
                shmlog.Writer.open(self.name, state_replid="xyz")


class Errors(LogTestCase):
    def test_errors_carry_the_code_and_a_message_naming_the_log(self):
        with self.assertRaises(shmlog.Error) as cm:
            shmlog.Writer.create("bad/name")
        self.assertEqual(cm.exception.code, "invalid_name")
        self.assertIn("bad/name", str(cm.exception))
        with self.assertRaises(shmlog.Error) as cm:
            shmlog.Reader.attach(self.name)
        self.assertEqual(cm.exception.code, "not_found")
        self.assertIn(self.name, str(cm.exception))
        with self.assertRaises(shmlog.Error) as cm:
            shmlog.Reader.attach(self.name, wait_for_creation=0.02)
        self.assertEqual(cm.exception.code, "not_found")
        self.assertIn("wait_for_creation 20 ms", str(cm.exception))
        with self.assertRaises(shmlog.Error) as cm:
            shmlog.Writer.create(self.name, capacity=5000)
        self.assertEqual(cm.exception.code, "invalid_argument")
        with self.assertRaises(ValueError):
            shmlog.Writer.create(self.name, fence="none")
        with shmlog.Writer.create(self.name, capacity=4096) as w:
            with self.assertRaises(shmlog.Error) as cm:
                shmlog.Writer.create(self.name)
            self.assertEqual(cm.exception.code, "already_exists")
            with self.assertRaises(shmlog.Error) as cm:
                shmlog.Writer.open(self.name)
            self.assertEqual(cm.exception.code, "writer_exists")
            with self.assertRaises(shmlog.Error) as cm:
                w.append(b"x" * (w.max_payload + 1))
            self.assertEqual(cm.exception.code, "record_too_large")
            self.assertEqual(w.master_offset, 0)
            with self.assertRaises(TypeError):
                w.append("text is not bytes")
            with self.assertRaises(ValueError):
                shmlog.Reader.attach(self.name, start="middle")
            with self.assertRaises(shmlog.Error) as cm:
                shmlog.Reader.attach(self.name, start=8)
            self.assertEqual(cm.exception.code, "offset_out_of_range")
            r = shmlog.Reader.attach(self.name)
            r.close()
            r.close()  # closing twice is harmless
            with self.assertRaises(ValueError):
                r.poll()
        with self.assertRaises(ValueError):
            w.append(b"closed")
        self.assertTrue(shmlog.exists(self.name))
        self.assertTrue(shmlog.destroy(self.name))
        self.assertFalse(shmlog.destroy(self.name))


class Threads(LogTestCase):
    def test_wait_releases_the_gil(self):
        """A thread blocked in wait() lets this thread run Python code: it sees the reader
        inside wait() and appends the record that ends the wait. If wait() held the GIL, this
        thread could not run until the wait timed out, and the wait would return False."""
        with shmlog.Writer.create(self.name) as w, shmlog.Reader.attach(self.name) as r:
            result = {}

            def waiter():
                result["published"] = r.wait(timeout=60)

            t = threading.Thread(target=waiter)
            t.start()
            deadline = time.monotonic() + 60
            while not r.in_wait and time.monotonic() < deadline:
                pass  # Python bytecode: runs only while the waiter does not hold the GIL
            self.assertTrue(r.in_wait)
            with self.assertRaises(RuntimeError):  # one thread at a time per reader
                r.poll()
            w.append(b"wake")
            t.join(timeout=60)
            self.assertFalse(t.is_alive())
            self.assertTrue(result["published"])
            self.assertFalse(r.in_wait)
            self.assertEqual(r.poll(), b"wake")


    def test_ctrl_c_interrupts_a_wait(self):
        """SIGINT reaches the main thread inside wait() (sent once it is in there, by another
        thread): KeyboardInterrupt, not a wait to the end of its timeout."""
        with shmlog.Writer.create(self.name), shmlog.Reader.attach(self.name) as r:
            def interrupt():
                deadline = time.monotonic() + 60
                while not r.in_wait and time.monotonic() < deadline:
                    pass
                os.kill(os.getpid(), signal.SIGINT)

            t = threading.Thread(target=interrupt)
            t.start()
            start = time.monotonic()
            with self.assertRaises(KeyboardInterrupt):
                r.wait(timeout=60)
            t.join()
            self.assertLess(time.monotonic() - start, 30)
            self.assertFalse(r.in_wait)
            self.assertIsNone(r.poll())  # usable again


WRITER_SCRIPT = """
import sys
import shmlog
with shmlog.Writer.open(sys.argv[1]) as w:
    for i in range(int(sys.argv[2])):
        w.append(b"record %d from the child" % i)
"""


class Processes(LogTestCase):
    def test_a_writer_in_another_process(self):
        """The reader attaches first, at the oldest record, and follows a writer process: every
        record arrives, in order, whatever the interleaving."""
        count = 2000
        shmlog.Writer.create(self.name, capacity=1 << 20).close()
        with shmlog.Reader.attach(self.name, start="oldest", wait_mode="sleep") as r:
            child = subprocess.Popen([sys.executable, "-c", WRITER_SCRIPT, self.name, str(count)])
            try:
                # idle: only a hung child is quiet this long.
                records = [rec for _, rec in zip(range(count), r.follow(idle=30))]
            finally:
                self.assertEqual(child.wait(timeout=60), 0)
            self.assertEqual(records, [b"record %d from the child" % i for i in range(count)])
            self.assertIsNone(r.poll())


if __name__ == "__main__":
    unittest.main()
