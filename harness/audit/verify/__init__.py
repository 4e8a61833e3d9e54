"""`harness verify`, shaped like check-jsonschema: parse (the folder and its spec, once) → check layers → reporter."""
