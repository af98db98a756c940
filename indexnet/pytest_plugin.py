"""pytest plugin (entry point ``pytest11``): fixtures for tests that use indexnet as an oracle.

Kept import-light: nothing here compiles a kernel until a fixture is used.
"""
