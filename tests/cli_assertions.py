"""What every CLI test checks of a refused command: a non-zero exit, one `Error:` line, nothing written."""


def assert_refused(result, message, *unwritten, exit_code=1):
    """`result` (click's CliRunner) failed with `message` in its single `Error:` line and left `unwritten` absent.

    exit_code: the expected code (1: a bad value, 2: a usage error), or None for any non-zero code. With 1 the
    message is all the output there is.
    """
    if exit_code is None:
        assert result.exit_code != 0, result.output
    else:
        assert result.exit_code == exit_code, result.output
    assert "Traceback" not in result.output
    errors = [line for line in result.output.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1 and message in errors[0], result.output
    if result.exit_code == 1:
        assert len([line for line in result.output.splitlines() if line.strip()]) == 1, result.output
    for path in unwritten:
        assert not path.exists(), f"{path} was written"
