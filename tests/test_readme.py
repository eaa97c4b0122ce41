"""The README's config example is a config the emulator accepts, key for key."""

import re
from pathlib import Path

from emulator.config import Config, build_config, load_toml

README = Path(__file__).resolve().parent.parent / "README.md"


def test_readme_config_example_loads(tmp_path):
    block = re.search(r"## Configuration.*?```toml\n(.*?)```", README.read_text(), re.S)
    assert block, "the README has a TOML example under Configuration"
    path = tmp_path / "example.toml"
    path.write_text(block.group(1))
    values = load_toml(str(path))  # unknown keys would raise
    config = build_config(values, {})
    assert isinstance(config, Config) and config.edition == "xp-pro"
    documented = set(values) | {"users", "shares"}
    missing = {f for f in Config.__dataclass_fields__} - documented
    assert not missing, f"config keys the README example does not show: {sorted(missing)}"


def test_readme_key_table_is_the_declaration():
    from emulator.config import key_table

    table = re.search(r"<!-- keys: begin -->\n(.*?)<!-- keys: end -->", README.read_text(), re.S)
    assert table, "the README has the key table between its markers"
    assert table.group(1) == key_table(), "regenerate it: python -m emulator.config"
