"""DAGs used only by the lease tests (served to ``dag.test()`` from their own DAG bundle)."""
