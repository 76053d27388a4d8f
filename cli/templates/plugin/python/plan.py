"""The strategy's arithmetic, apart from the host's capabilities so that it can be tested
with plain Python: `python3 -m unittest`."""


def share(step, steps):
    """The new release's share of the traffic after `step` of `steps`, in percent."""
    return min(100, step * 100 // max(1, steps))


def parse_whole(key, text, low, high):
    """`text` as a whole number from `low` to `high`, or a ValueError that says why not."""
    if not text.isdigit() or not low <= int(text) <= high:
        raise ValueError(f"{key} must be a whole number from {low} to {high}; got `{text}`")
    return int(text)
