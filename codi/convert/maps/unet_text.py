"""Component specs: see codi.convert.spec."""

from codi.convert.spec import ComponentSpec

SPECS: list[ComponentSpec] = []
