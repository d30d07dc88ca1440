"""Search spaces: parsing, checking against the config, and the Tune / Optuna forms."""

from pathlib import Path

import pytest

from lmgan.config import Config
from lmgan.errors import LmganError
from lmgan.sweep.space import dump_space, load_space, parse_space, to_optuna, to_tune

REPO = Path(__file__).resolve().parents[1]


def parse(raw):
    return parse_space(raw, "space.yaml", Config())


def test_shipped_spaces_parse():
    default = load_space(REPO / "sweeps/spaces/default.yaml")
    assert set(default) == {"lr_g", "lr_d", "rnn_layers", "vp_kernel"}
    assert default["vp_kernel"].values == (3, 5, 7) and default["rnn_layers"].values == (1, 4)
    ablation = load_space(REPO / "sweeps/spaces/ablation.yaml")
    assert set(ablation) == {"mfs", "sac", "acin", "vp"}


def test_forms_agree():
    space = parse({"lr_g": {"loguniform": [1e-5, 1e-3]}, "rnn_layers": {"int": [1, 4]},
                   "vp": {"choice": ["convgru", "dirconvgru"]}, "lambda_l1": {"uniform": [0, 10]}})
    tune = to_tune(space)
    assert tune["rnn_layers"].lower == 1 and tune["rnn_layers"].upper == 5   # randint excludes upper
    opt = to_optuna(space)
    assert opt["lr_g"].log and (opt["rnn_layers"].low, opt["rnn_layers"].high) == (1, 4)
    assert parse(dump_space(space)) == space


@pytest.mark.parametrize("raw, message", [
    ({"nonsense": {"int": [1, 2]}}, "unknown search-space key 'nonsense'"),
    ({"lr_g": {"loguniform": [1e-3, 1e-4]}}, "empty range"),
    ({"rnn_layers": {"int": [3, 3]}}, "empty range"),
    ({"lr_g": {"loguniform": [0, 1e-3]}}, "loguniform needs low > 0"),
    ({"vp_kernel": {"choice": []}}, "non-empty list"),
    ({"vp_kernel": {"choice": [3, 4]}}, "vp_kernel=4"),
    ({"image_size": {"choice": [48]}}, "power of two"),
    ({"lr_g": {"normal": [0, 1]}}, "expected one of"),
    ({"iters": {"int": [1, 10]}}, "cannot be searched"),
    ({"rnn_layers": {"int": [1.5, 3]}}, "integer bounds"),
])
def test_bad_spaces_name_the_problem(raw, message):
    with pytest.raises(LmganError, match=message.replace("(", r"\(")):
        parse(raw)


def test_empty_and_malformed_files(tmp_path):
    empty = tmp_path / "empty.yaml"
    empty.write_text("# nothing\n")
    with pytest.raises(LmganError, match="empty"):
        load_space(empty)
    bad = tmp_path / "bad.yaml"
    bad.write_text("lr_g: {loguniform: [1e-5\n")
    with pytest.raises(LmganError, match="malformed YAML"):
        load_space(bad)


def test_pbt_mutations_stay_inside_the_space():
    from ray import tune
    space = parse_space({"lr_g": {"loguniform": [1e-5, 1e-3]}, "rnn_layers": {"int": [1, 4]},
                         "vp_kernel": {"choice": [3, 5, 7]}}, "test", Config())
    assert space["vp_kernel"].to_mutation() == [3, 5, 7]           # explore steps to a neighbour
    assert isinstance(space["lr_g"].to_mutation(), tune.search.sample.Float)
    assert space["lr_g"].clamp(1.2e-3) == 1e-3 and space["lr_g"].clamp(8e-6) == 1e-5
    assert space["lr_g"].clamp(2e-4) == 2e-4
    assert space["rnn_layers"].clamp(4.8) == 4 and space["rnn_layers"].clamp(2.4) == 2
