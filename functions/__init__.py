"""AWS Lambda handlers (``api``, ``worker``) and the code they share with the local stack.

``jobs`` runs stored runs from queue messages (no AWS SDK); ``sqs`` is the
SQS queue; ``local_stack`` starts moto on 127.0.0.1 with the table and
queues of ``template.yaml`` and delivers messages to the worker handler.
"""
