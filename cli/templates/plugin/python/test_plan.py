import unittest

from plan import parse_whole, share


class PlanTest(unittest.TestCase):
    def test_the_traffic_moves_in_equal_steps_to_all_of_it(self):
        self.assertEqual([share(s, 4) for s in range(1, 5)], [25, 50, 75, 100])
        self.assertEqual(share(3, 3), 100)

    def test_a_bad_parameter_says_what_is_wanted(self):
        self.assertEqual(parse_whole("steps", "4", 1, 100), 4)
        with self.assertRaisesRegex(ValueError, "steps must be a whole number from 1 to 100; got `x`"):
            parse_whole("steps", "x", 1, 100)


if __name__ == "__main__":
    unittest.main()
