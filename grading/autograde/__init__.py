"""The autograder: intake, composing a submission, the sandbox and the scripts it runs, the hidden
checks, the notebook runs, the gradebook, feedback and grade export; ``job`` runs it all."""
