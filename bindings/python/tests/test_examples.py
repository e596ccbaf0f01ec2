"""The Python examples (examples/python/producer.py and consumer.py) run as a user would run
them, as processes: what the producer appends, the consumer prints, from arguments and from
standard input (through claims), and a consumer started first waits for the producer.

SHMLOG_PYTHON_EXAMPLES names the folder (ctest sets it); PYTHONPATH must find the module.
"""
import os
import subprocess
import sys
import unittest

import shmlog

EXAMPLES = os.environ.get(
    "SHMLOG_PYTHON_EXAMPLES",
    os.path.join(os.path.dirname(__file__), "..", "..", "..", "examples", "python"))


def script(name):
    return [sys.executable, os.path.join(EXAMPLES, name)]


class Examples(unittest.TestCase):
    def setUp(self):
        self.name = f"py-example-{os.getpid()}-{self._testMethodName}"
        shmlog.destroy(self.name)
        self.addCleanup(shmlog.destroy, self.name)

    def test_producer_then_consumer(self):
        subprocess.run(script("producer.py") + [self.name, "AAPL 189.91", "MSFT 411.2"],
                       check=True, timeout=60)
        subprocess.run(script("producer.py") + [self.name], input=b"from stdin\nsecond line\n",
                       check=True, timeout=60)
        out = subprocess.run(script("consumer.py") + [self.name, "4"], check=True,
                             capture_output=True, timeout=60).stdout.decode()
        self.assertEqual(out, "0\tAAPL 189.91\n24\tMSFT 411.2\n48\tfrom stdin\n"
                              "72\tsecond line\n")

    def test_consumer_started_first_waits_for_the_producer(self):
        shmlog.Writer.create(self.name).close()
        consumer = subprocess.Popen(script("consumer.py") + [self.name, "2"],
                                    stdout=subprocess.PIPE)
        try:
            subprocess.run(script("producer.py") + [self.name, "a", "b"], check=True, timeout=60)
            out, _ = consumer.communicate(timeout=60)
        finally:
            consumer.kill()
            consumer.wait()
        self.assertEqual(consumer.returncode, 0)
        self.assertEqual(out.decode(), "0\ta\n16\tb\n")

    def test_bad_usage_and_a_missing_log(self):
        self.assertEqual(subprocess.run(script("consumer.py"), capture_output=True).returncode, 2)
        missing = subprocess.run(script("consumer.py") + [self.name], capture_output=True)
        self.assertEqual(missing.returncode, 1)
        self.assertIn(self.name, missing.stderr.decode())


if __name__ == "__main__":
    unittest.main()
