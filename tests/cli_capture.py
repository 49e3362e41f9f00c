"""Run the `taxifare` command line in this process and capture what it prints."""

import contextlib
import io

from taxifare import cli


def run_cli(*argv: str) -> tuple[int, str, str]:
    """(exit code, stdout, stderr) of `taxifare ARGV...`."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = cli.main(list(argv))
    return code, out.getvalue(), err.getvalue()
