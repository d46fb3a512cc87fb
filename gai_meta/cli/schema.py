"""``gai-meta schema [NAME]``: print the JSON Schema of a metadata file."""

from __future__ import annotations

import typer

from gai_meta.cli import command

__all__ = ["schema"]


@command("schema")
def schema(
    name: str | None = typer.Argument(
        None,
        help="model_summary, model_parameters, experiment_config, "
        "dataloader_config_snapshot or training_history (.json optional).",
    ),
    list_names: bool = typer.Option(False, "--list", help="Only list the schema names."),
) -> None:
    """Print the JSON Schema (draft 2020-12) of one metadata file, or of all of them."""
    from gai_meta.atomic import dump_json
    from gai_meta.schema import available_schemas, load_schema

    if list_names:
        for n in available_schemas():
            typer.echo(n)
        return
    if name is None:
        doc = {f"{n}.json": load_schema(n) for n in available_schemas()}
    else:
        doc = load_schema(name)
    typer.echo(dump_json(doc).decode(), nl=False)
