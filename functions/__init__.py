"""AWS Lambda handlers (``api``, ``worker``) and the local stack that runs them on a laptop.

Thin: the durable engine they run is ``flowmason.plugins.durable``;
``sqs`` is the SQS queue; ``moto_server`` starts moto's server mode on
127.0.0.1 (an optional dependency: the ``aws-local`` extra);
``local_stack`` creates the table and queues of ``template.yaml`` on it and
delivers messages to the worker handler.
"""
