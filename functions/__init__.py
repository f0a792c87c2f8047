"""AWS Lambda handlers (``api``, ``worker``) and the code they share with the local stack.

``jobs`` runs stored runs from queue messages (no AWS SDK); ``sqs`` is the
SQS queue; ``moto_server`` starts moto's server mode on 127.0.0.1 (an
optional dependency: the ``aws-local`` extra); ``local_stack`` creates the
table and queues of ``template.yaml`` on it and delivers messages to the
worker handler.
"""
