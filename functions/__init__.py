"""AWS Lambda handlers (``api``, ``worker``) and the local stack that runs them on a laptop.

Thin: the durable engine they run is ``flowmason.plugins.durable``;
``sqs`` is the SQS queue; ``local_stack`` starts moto on 127.0.0.1 with the
table and queues of ``template.yaml`` and delivers messages to the worker
handler.
"""
