"""Thin DVC stage scripts: each loads its view of the spec, calls the library, writes outputs atomically."""
