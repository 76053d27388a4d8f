import unittest

from verdict import verdict


class VerdictTest(unittest.TestCase):
    def test_a_command_passes_only_when_it_exits_0(self):
        self.assertEqual(verdict("./migrate", 0, "done\n"), (True, "`./migrate` passed: done"))
        self.assertEqual(verdict("./migrate", 3, ""), (False, "`./migrate` exited 3: (no output)"))


if __name__ == "__main__":
    unittest.main()
