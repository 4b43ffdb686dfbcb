"""`POST /v1/similarity/preview` with a `loss`: the `guidance` block (targets, warnings, equivalence to
cross-entropy), the 422s naming `loss.<field>`, and that it needs a key like the preview itself.
"""

from __future__ import annotations

import json

import pytest

CLASSES = ["low", "mid", "high", "top"]
ORDINAL = {"kind": "ordinal"}
IDENTITY = {"kind": "identity"}
CE = {"kind": "cross_entropy"}


def _mix(*parts: tuple[float, dict | str]) -> dict:
    """A combined loss of (weight, loss spec or kind) parts."""
    comps = [{"weight": w, "loss": {"kind": x} if isinstance(x, str) else x} for w, x in parts]
    return {"kind": "combined", "components": comps}


URL = "/v1/similarity/preview"
GROUPS = {"kind": "groups", "groups": [["low", "mid"], ["high", "top"]], "within": 0.5}


def _preview(service, loss=None, similarity=ORDINAL, classes=CLASSES, auth=None):
    body = {"classes": classes, "similarity": similarity}
    if loss is not None:
        body["loss"] = loss
    return service.client.post(URL, json=body, headers=service.auth_a if auth is None else auth)


def _guidance(service, loss, similarity=ORDINAL) -> dict:
    r = _preview(service, loss, similarity)
    assert r.status_code == 200, r.text
    return r.json()["guidance"]


def _codes(g: dict) -> list[str]:
    return [w["code"] for w in g["warnings"]]


def test_without_a_loss_there_is_no_guidance(embedded):
    r = _preview(embedded)
    assert r.status_code == 200 and r.json()["guidance"] is None and len(r.json()["matrix"]) == 4


@pytest.mark.parametrize(
    "loss",
    [
        {"kind": "soft_labels"},
        {"kind": "soft_labels", "temperature": 2.0, "normalise": "softmax"},
        {"kind": "cross_entropy", "label_smoothing": 0.1},
        {"kind": "unimodal_soft_labels", "family": "binomial"},
        _mix((0.5, CE), (0.5, "soft_labels")),
    ],
    ids=lambda s: s["kind"],
)
def test_distribution_targets_have_a_row_per_class_summing_to_1(embedded, loss):
    g = _guidance(embedded, loss)
    assert g["loss"] == loss["kind"] and g["targets_kind"] == "distribution"
    assert len(g["targets"]) == 4 and all(len(row) == 4 for row in g["targets"])
    for y, row in enumerate(g["targets"]):
        assert abs(sum(row) - 1.0) < 1e-5 and min(row) >= 0.0
        assert row[y] == max(row) and row[y] < 1.0  # peaked at the truth, not one-hot
    assert g["equivalent_to_cross_entropy"] is False and _codes(g) == []


def test_soft_labels_targets_follow_the_similarity_rows(embedded):
    r = _preview(embedded, {"kind": "soft_labels"})
    matrix, targets = r.json()["matrix"], r.json()["guidance"]["targets"]
    for s_row, q_row in zip(matrix, targets):
        total = sum(s_row)
        assert q_row == pytest.approx([s / total for s in s_row], abs=1e-5)


def test_simloss_reports_credit_weights(embedded):
    g = _guidance(embedded, {"kind": "simloss"})
    assert g["targets_kind"] == "weights" and all(abs(sum(row) - 1) < 1e-5 for row in g["targets"])


@pytest.mark.parametrize("kind", ["emd", "expected_value"])
def test_slow_alone_for_emd_and_expected_value_alone_and_not_with_cross_entropy(embedded, kind):
    alone = _guidance(embedded, {"kind": kind})
    assert _codes(alone) == ["slow_alone"] and alone["targets"] is None and alone["targets_kind"] is None
    combined = _mix((0.7, CE), (0.3, kind))
    assert "slow_alone" not in _codes(_guidance(embedded, combined))


@pytest.mark.parametrize(
    ("loss", "similarity"),
    [
        ({"kind": "simloss"}, IDENTITY),
        ({"kind": "soft_labels"}, IDENTITY),
        ({"kind": "soft_labels", "temperature": 0.01}, ORDINAL),
        (_mix((1, CE), (2, "soft_labels")), IDENTITY),
    ],
    ids=["simloss-identity", "soft_labels-identity", "soft_labels-T0.01", "combined-identity"],
)
def test_equals_cross_entropy_when_the_spec_makes_it_so(embedded, loss, similarity):
    g = _guidance(embedded, loss, similarity)
    assert g["equivalent_to_cross_entropy"] is True and _codes(g) == ["equals_cross_entropy"]


@pytest.mark.parametrize("loss", [{"kind": "simloss"}, {"kind": "soft_labels"}, {"kind": "expected_cost"}])
def test_not_cross_entropy_with_a_real_similarity(embedded, loss):
    g = _guidance(embedded, loss, ORDINAL)
    assert g["equivalent_to_cross_entropy"] is False and "equals_cross_entropy" not in _codes(g)


def test_expected_cost_at_identity_is_not_cross_entropy_but_is_slow(embedded):
    g = _guidance(embedded, {"kind": "expected_cost"}, IDENTITY)  # 1 - p_y
    assert g["equivalent_to_cross_entropy"] is False and _codes(g) == ["slow_alone"]


def test_a_clipped_matrix_is_surfaced(embedded):
    sim = {"kind": "matrix", "values": [[1, 0.5, 0], [0.5, 1, 0.2], [0, 0.2, 1 - 5e-7]]}
    r = _preview(embedded, {"kind": "simloss"}, sim, classes=["a", "b", "c"])
    assert r.status_code == 200 and _codes(r.json()["guidance"]) == ["similarity_clipped"]


@pytest.mark.parametrize(
    ("loss", "similarity", "field"),
    [
        ({"kind": "soft_labels", "temperature": 0}, ORDINAL, "loss.temperature"),
        ({"kind": "soft_labels", "bogus": 1}, ORDINAL, "loss.bogus"),
        ({"kind": "nope"}, ORDINAL, "loss.kind"),
        ({"kind": "hierarchical_xe"}, ORDINAL, "loss.kind"),  # needs a hierarchy: checked against the classes
        ({"kind": "emd"}, GROUPS, "loss.kind"),  # ordered classes: not a groups similarity
        (_mix((0, CE)), ORDINAL, "loss.components.0.weight"),
        ({"kind": "focal", "alpha": {"low": 0.5}}, ORDINAL, "loss.alpha"),
    ],
)
def test_a_bad_loss_spec_is_a_422_naming_the_field(embedded, loss, similarity, field):
    r = _preview(embedded, loss, similarity)
    assert r.status_code == 422, r.text
    err = r.json()["error"]
    fields = [d.get("field") for d in err.get("details") or []] or [err["details"]]
    assert field in fields or field in err["message"], err


def test_the_png_variant_checks_the_loss_too_and_needs_a_key(embedded):
    body = {"classes": CLASSES, "similarity": ORDINAL, "loss": {"kind": "soft_labels", "temperature": -1}}
    r = embedded.client.post(URL + ".png", json=body, headers=embedded.auth_a)
    assert r.status_code == 422
    body["loss"] = {"kind": "soft_labels"}
    r = embedded.client.post(URL + ".png", json=body, headers=embedded.auth_a)
    assert r.status_code == 200 and r.headers["content-type"] == "image/png"
    assert embedded.client.post(URL, json=body).status_code == 401
    r = embedded.client.post(URL, json=body, headers=embedded.auth_b)  # nothing stored: any tenant may
    assert r.json()["guidance"]["loss"] == "soft_labels"


def _cli(embedded, *args: str):
    from typer.testing import CliRunner

    from cli.app import app
    from cli.connect import Overrides

    classes = ",".join(CLASSES)
    argv = ["similarity", "preview", "--classes", classes, "--similarity", '{"kind": "ordinal"}', *args]
    env = {"COLUMNS": "160", "SIMTRAIN_URL": None}
    argv += ["--api-key", embedded.key_a]
    return CliRunner().invoke(app, argv, obj=Overrides(http=embedded.client), env=env)


def test_cli_preview_shows_targets_and_warnings(embedded):
    r = _cli(embedded, "--loss", '{"kind": "emd"}')
    assert r.exit_code == 0, r.output
    assert "warning slow_alone:" in r.output and "targets none" in r.output and "top" in r.output
    r = _cli(embedded, "--loss", '{"kind": "soft_labels"}')
    assert r.exit_code == 0 and "distribution targets" in r.output and "warning" not in r.output
    r = _cli(embedded, "--loss", '{"kind": "soft_labels"}', "--json")
    body = json.loads(r.output)
    assert body["guidance"]["targets_kind"] == "distribution" and len(body["guidance"]["targets"]) == 4


def test_cli_preview_bad_loss_is_one_line_naming_the_field(embedded):
    r = _cli(embedded, "--loss", '{"kind": "soft_labels", "temperature": -1}')
    assert r.exit_code == 1 and "loss.temperature" in r.output
    r = _cli(embedded, "--loss", "{not json")
    assert r.exit_code == 1 and "--loss" in r.output


def test_cli_preview_writes_the_heatmap(embedded, tmp_path):
    out = tmp_path / "sim.png"
    r = _cli(embedded, "--loss", '{"kind": "simloss"}', "--png", str(out))
    assert r.exit_code == 0, r.output
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_the_get_preview_takes_a_loss_as_json_like_the_post(embedded):
    params = {"classes": ",".join(CLASSES), "similarity": json.dumps(ORDINAL)}
    r = embedded.client.get(URL, params=params, headers=embedded.auth_a)
    assert r.status_code == 200 and r.json()["guidance"] is None
    loss = {"kind": "soft_labels", "temperature": 2.0}
    r = embedded.client.get(URL, params={**params, "loss": json.dumps(loss)}, headers=embedded.auth_a)
    assert r.status_code == 200, r.text
    assert r.json()["guidance"] == _guidance(embedded, loss)  # what the POST answers
    bad = {**params, "loss": json.dumps({"kind": "soft_labels", "temperature": -1})}
    r = embedded.client.get(URL, params=bad, headers=embedded.auth_a)
    assert r.status_code == 422 and r.json()["error"]["details"][0]["field"] == "loss.temperature", r.text
    r = embedded.client.get(URL, params={**params, "loss": "{not json"}, headers=embedded.auth_a)
    assert r.status_code == 422 and r.json()["error"]["details"][0]["field"] == "loss", r.text
    r = embedded.client.get(URL, params={**params, "loss": json.dumps(loss), "format": "png"},
                            headers=embedded.auth_a)  # fmt: skip
    assert r.status_code == 200 and r.headers["content-type"] == "image/png"
