"""A model that compiles nothing never imports torch._dynamo (1.3-1.9 s), and a model that
compiles still runs eagerly in the commands that only read it. Each case in a fresh
interpreter: in this one, another test may have imported dynamo already."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

from tiny_nets import tiny_net_source

PLAIN = tiny_net_source("plain")

# Its own file: loading it runs @torch.compile, which imports dynamo.
DECORATED = """
import torch
from torch import nn

from nets import plain


class Decorated(nn.Module):
    def __init__(self):
        super().__init__()
        self.net = plain()

    @torch.compile(backend="eager")  # dynamo traces as with inductor, without its compile time
    def forward(self, x):
        return self.net(x)


def decorated():
    return Decorated()
"""


def _fresh(code: str, tmp_path) -> dict:
    """The JSON that `code` prints last, run by a fresh interpreter in `tmp_path`."""
    done = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)], cwd=tmp_path, capture_output=True,
        text=True, timeout=300, env=None,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_the_classifier_check_of_a_plain_net_leaves_dynamo_unimported(tmp_path):
    """classifier_misfit (every load_run, import and train) entered force_eager, which
    imports torch._dynamo: 0.002 s became 1.3 s for an 8×8 net. Truth: the check still finds
    the plain net fits, and a wrong class count is still named."""
    got = _fresh(
        """
        import json, sys
        from torch import nn
        from cnnlab.inspect import classifier_misfit
        net = nn.Sequential(nn.Conv2d(1, 4, 3), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                            nn.Linear(4, 3))
        fits = classifier_misfit(net, (1, 8, 8), 3) is None
        kind = classifier_misfit(net, (1, 8, 8), 5).kind
        print(json.dumps({"fits": fits, "kind": kind, "dynamo": "torch._dynamo" in sys.modules}))
        """,
        tmp_path,
    )
    assert got == {"fits": True, "kind": "classes", "dynamo": False}


def test_commands_that_read_a_plain_model_leave_dynamo_unimported(tmp_path):
    """import, eval and summary (of code and of a zoo preset) of a model that compiles
    nothing: the CLI entered force_eager for each, importing dynamo (eval +1.5 s)."""
    (tmp_path / "nets.py").write_text(PLAIN)
    got = _fresh(
        """
        import contextlib, io, json, sys
        from safetensors.torch import save_file
        sys.path.insert(0, ".")
        import nets
        from cnnlab.cli import main
        save_file(nets.plain().state_dict(), "w.safetensors")
        codes = []
        with contextlib.redirect_stdout(io.StringIO()):
            codes.append(main(["import", "--model", "nets.py:plain", "--weights",
                               "w.safetensors", "--data", "digits", "--out", "run"]))
            codes.append(main(["eval", "run", "--json"]))
            codes.append(main(["summary", "--model", "nets.py:plain", "--input", "1,8,8"]))
            codes.append(main(["summary", "lenet5"]))
        print(json.dumps({"codes": codes, "dynamo": "torch._dynamo" in sys.modules}))
        """,
        tmp_path,
    )
    assert got == {"codes": [0, 0, 0, 0], "dynamo": False}


def test_a_forward_compiled_when_its_code_loads_still_runs_eagerly_in_eval(tmp_path):
    """The stance is now entered once the model is built (dynamo is imported by the model's
    own @torch.compile, after the command started): eval of such a run compiles no graph
    (dynamo's counter stays 0), and its logits are the plain net's (truth: nets.plain with
    the same weights, no compiled code)."""
    (tmp_path / "nets.py").write_text(PLAIN)
    (tmp_path / "deco.py").write_text(DECORATED)
    got = _fresh(
        """
        import contextlib, io, json, sys
        from safetensors.torch import save_file
        sys.path.insert(0, ".")
        import nets
        from cnnlab.cli import main
        save_file(nets.plain().state_dict(), "w.safetensors")
        decorated = {"net." + k: v for k, v in nets.plain().state_dict().items()}
        save_file(decorated, "d.safetensors")
        codes = []
        with contextlib.redirect_stdout(io.StringIO()):
            codes.append(main(["import", "--model", "nets.py:plain", "--weights",
                               "w.safetensors", "--data", "digits", "--out", "plain"]))
        before = "torch._dynamo" in sys.modules
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            codes.append(main(["import", "--model", "deco.py:decorated", "--weights",
                               "d.safetensors", "--data", "digits", "--out", "deco"]))
            out.truncate(0), out.seek(0)
            codes.append(main(["eval", "deco", "--json"]))
        deco = json.loads(out.getvalue())
        with contextlib.redirect_stdout(io.StringIO()):
            codes.append(main(["eval", "plain", "--json"]))
        from torch._dynamo.utils import counters
        print(json.dumps({"codes": codes, "before": before,
                          "graphs": counters["stats"]["unique_graphs"],
                          "accuracy": deco["accuracy"]}))
        """,
        tmp_path,
    )
    truth = _fresh(
        """
        import json, sys, torch
        sys.path.insert(0, ".")
        import nets
        from cnnlab.train.rundir import load_run
        run = load_run("plain")
        data = run.dataset("test")
        with torch.no_grad():
            logits = nets.plain().eval()(run.preprocess(data.images))
        print(json.dumps((logits.argmax(1) == data.labels).float().mean().item()))
        """,
        tmp_path,
    )
    assert got["codes"] == [0, 0, 0, 0] and got["before"] is False
    assert got["graphs"] == 0
    assert abs(got["accuracy"] - truth) < 1e-6
