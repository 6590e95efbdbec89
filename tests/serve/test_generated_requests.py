"""Generated request bodies and serve options (issue 26's rule, for the server): any body gets a 2xx or a 4xx with
one error, never a 5xx or a traceback; any serve option value is valid or refused in one line naming its flag.
The options of `serve` and `export` are read off their config schemas."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bertx.errors import BertxError
from tests.test_generated_inputs import trained  # noqa: F401  (the module-scoped tiny run)

JSON_VALUES = st.recursive(
    st.one_of(
        st.none(),
        st.booleans(),
        st.integers(),
        st.floats(allow_nan=False),
        st.text(max_size=30),
        st.sampled_from(["\ud800", "a\udfff b", "😀", "x" * 3000]),
    ),
    lambda inner: st.one_of(
        st.lists(inner, max_size=5), st.dictionaries(st.sampled_from(["text", "text_pair", "question", "context", "inputs", "x"]), inner, max_size=3)
    ),
    max_leaves=12,
)


@pytest.fixture(scope="module")
def client(trained):  # noqa: F811
    pytest.importorskip("fastapi")
    from fastapi.testclient import TestClient

    from bertx.serve.app import create_app
    from bertx.serve.main import load_models
    from bertx.serve.protocol import Limits

    with TestClient(create_app(load_models({"m": str(trained / "run")}), Limits(max_inputs=8))) as test_client:
        yield test_client


@given(body=st.one_of(JSON_VALUES.map(lambda v: {"inputs": v}), JSON_VALUES))
def test_the_server_answers_a_client_fault_with_a_4xx_never_a_5xx(client, body):
    data = json.dumps(body).encode()
    response = client.post("/v1/models/m/predict", content=data, headers={"content-type": "application/json"})
    assert response.status_code < 500, (response.status_code, response.text[:300])
    if response.status_code >= 400:
        assert set(response.json()) == {"error"} and "Traceback" not in response.text


@given(raw=st.binary(max_size=200))
def test_the_server_answers_any_bytes_with_a_4xx_never_a_5xx(client, raw):
    response = client.post("/v1/models/m/predict", content=raw, headers={"content-type": "application/json"})
    assert response.status_code < 500, (response.status_code, response.text[:300])


@pytest.mark.parametrize("command, schema_name", [("serve", "ServeConfig"), ("export", "ExportConfig")])
def test_serve_and_export_options_are_their_schemas_fields(command, schema_name):
    """Issue 41: the options of `serve` and `export` are read off their config schemas: one option per field,
    with the field's default, so no default is declared twice."""
    import typer.main

    import bertx.config.use as use
    from bertx.cli import app

    schema = getattr(use, schema_name)
    click_command = typer.main.get_command(app).commands[command]
    options = {p.name: p for p in click_command.params if p.param_type_name == "option"}
    assert set(schema.model_fields) <= set(options)
    for name, field in schema.model_fields.items():
        if not field.is_required():
            assert options[name].default == field.default, name


@given(
    field=st.sampled_from(["port", "max_batch_size", "max_wait_ms", "max_body_mb", "deadline_ms", "adapter_runtime", "max_inputs"]),
    value=st.one_of(st.integers(-5, 70000), st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=8)),
)
def test_a_serve_option_is_valid_or_one_line_naming_its_flag(field, value):
    from bertx.cli.options import _validated_options
    from bertx.config.use import ServeConfig

    try:
        _validated_options(ServeConfig, {field: value})
    except BertxError as err:
        message = str(err)
        assert message.startswith("--" + field.replace("_", "-") + " ") and "\n" not in message
