"""The project's own two processes on the local stack, one launcher each (operator_process.py,
receiver_process.py), and what tests and benchmarks build on them: the project's objects
through kubectl (objects.py), a namespace with a fresh Stripe account and operators watching
it (scene.py), and a rotation under live traffic, counted (rotation/)."""
