"""Placement of tiles: µm to output pixels, orientation."""
