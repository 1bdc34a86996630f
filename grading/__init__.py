"""Instructor tooling: notebook execution, the student release, autograding and the report."""
