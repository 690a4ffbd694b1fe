"""JSON round trips of the trainers' frozen settings dataclasses (`training.json` of a run directory).

Tuple fields are stored as JSON lists and read back as tuples, so `from_dict(json.loads(json.dumps(to_dict())))`
gives an equal config; an unknown key (a typo in a preset override, a run directory of another version) is an error
that names it and the known fields.
"""

import dataclasses


class JsonSettings:
    """Mixin for a frozen dataclass of JSON values and tuples. `SETTINGS_NAME` names them in the errors."""

    SETTINGS_NAME = "settings"

    def to_dict(self) -> dict:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(self).items()}

    @classmethod
    def from_dict(cls, values: dict):
        fields = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - fields)
        if unknown:
            raise ValueError(f"unknown {cls.SETTINGS_NAME} {unknown}; known: {sorted(fields)}")
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in values.items()})
