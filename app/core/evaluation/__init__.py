"""HumanEval-Infilling pass@1 for local quants: data, sandbox, generation, run folders.

Qt-free, so the ``eval`` verb and the comparison window's Quality tab share it:

* ``dataset``: the vendored problems and which of them a run uses;
* ``scoring``: pass@1 with its Wilson interval, exact match;
* ``sandbox``: runs one untrusted program in its own locked-down process;
* ``store``: the run folder a run appends its results to (and resumes from);
* ``runner``: generation with the engine, execution, the report.
"""
