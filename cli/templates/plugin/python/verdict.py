"""The hook's judgement, apart from the host's capabilities so that it can be tested with
plain Python: `python3 -m unittest`."""


def verdict(command, exit_code, output):
    """(passed, what the event log says) of a finished command."""
    shown = output.strip() or "(no output)"
    if exit_code == 0:
        return True, f"`{command}` passed: {shown}"
    return False, f"`{command}` exited {exit_code}: {shown}"
