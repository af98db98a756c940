"""The equation map and its readers: derivation equations <-> kernel forms
(``indexnet explain``, the derivations index, the LaTeX-to-text reading)."""
