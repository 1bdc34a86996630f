"""The nbgrader course: its configuration, plug-ins and header notebook, and the course root
assembled under ``build/course/`` (course_root)."""
