"""GracefulInterrupt turns SIGINT and SIGTERM into a flag and the shell's exit codes,
in this process (the subprocess kill/resume tests in tests/test_cli.py send SIGTERM to a
real training run)."""
import os
import signal
import time

import pytest

from gsnn.runtime.interrupt import GracefulInterrupt, RunInterrupted


def _deliver(signum):
    os.kill(os.getpid(), signum)
    time.sleep(0.01)  # Python runs the handler at the next bytecode boundary of the main thread


@pytest.mark.parametrize("signum,code", [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_a_signal_becomes_a_flag_with_its_exit_code_and_the_handler_is_restored(signum, code):
    before = signal.getsignal(signum)
    with GracefulInterrupt() as stop:
        assert not stop.requested
        _deliver(signum)
        assert stop.requested and stop.signum == signum
        e = stop.interrupted("at epoch 2, step 5", "gsnn train --resume run")
        assert isinstance(e, RunInterrupted) and e.exit_code == code
        assert f"{signal.Signals(signum).name}: stopped at epoch 2, step 5" in str(e)
        assert "Resume with: gsnn train --resume run" in str(e)
        with pytest.raises(KeyboardInterrupt, match="second"):  # a second signal stops at once
            _deliver(signum)
    assert signal.getsignal(signum) == before
