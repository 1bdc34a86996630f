"""The course: its description (questions, tasks, points, hidden-check cases) and its build.

* :mod:`course.paths` -- the repository and the ``build/`` layout (the one place that names them);
* :mod:`course.registry` -- the question registry, read from ``course/course.toml`` and
  ``course/questions/*.toml``: everything that lists questions derives from it;
* :mod:`course.execute`, :mod:`course.run`, :mod:`course.report` -- executing the notebooks
  (``make run``) and rendering them as the report (``make report``).

Nothing here imports the grading side; ``grading`` imports the registry and the paths.
"""
