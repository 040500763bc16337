"""The lab: a simulated private subnet for end-to-end tests (see README.md)."""
