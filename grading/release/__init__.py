"""The student release: strip the solutions from hwlib (strip), build the release folder and zip
with its README and environment (build), and prove nothing secret reached it (leaks)."""
