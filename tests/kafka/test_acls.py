"""The ACLs docs/runbook.md gives for the markers topic ("Securing driftline's topics"),
on a broker with SASL/PLAIN and KRaft's StandardAuthorizer: the job's principal writes its
batches and markers; another authenticated principal can neither forge a marker nor take
over the writer's transactional.id, so a replay is not skipped."""

from __future__ import annotations

import json

import pytest
from confluent_kafka import KafkaError, KafkaException, Producer
from confluent_kafka.admin import (
    AclBinding,
    AclOperation,
    AclPermissionType,
    NewTopic,
    ResourcePatternType,
    ResourceType,
)

from driftline.kafka.broker import EmbeddedBroker, free_port
from driftline.kafka.clients import make_admin
from driftline.kafka.transactional import OutgoingRecord, TransactionalBatchWriter
from driftline.testing.live import wait_until

pytestmark = pytest.mark.kafka
USERS = {"admin": "admin-secret", "driftline-job": "job-secret", "mallory": "mallory-secret"}
MARKERS, OUT, OWN = "driftline.markers", "payments.dlq", "mallory.own"


def _sasl(user: str) -> dict[str, str]:
    return {"security.protocol": "SASL_PLAINTEXT", "sasl.mechanism": "PLAIN",
            "sasl.username": user, "sasl.password": USERS[user]}  # fmt: skip


def _secured_broker(state_dir) -> EmbeddedBroker:
    jaas = "org.apache.kafka.common.security.plain.PlainLoginModule required " + " ".join(
        ['username="admin"', 'password="admin-secret"'] + [f'user_{u}="{p}"' for u, p in USERS.items()]
    ) + ";"  # fmt: skip
    overrides = {
        # the client listener (named PLAINTEXT by server_properties) speaks SASL_PLAINTEXT
        "listener.security.protocol.map": "PLAINTEXT:SASL_PLAINTEXT,CONTROLLER:PLAINTEXT",
        "sasl.enabled.mechanisms": "PLAIN",
        "sasl.mechanism.inter.broker.protocol": "PLAIN",
        "listener.name.plaintext.plain.sasl.jaas.config": jaas,
        "authorizer.class.name": "org.apache.kafka.metadata.authorizer.StandardAuthorizer",
        # the broker's own requests to its controller arrive on the PLAINTEXT controller listener
        "super.users": "User:admin;User:ANONYMOUS",
    }
    return EmbeddedBroker(state_dir, port=free_port(), overrides=overrides, client=_sasl("admin"))


def _allow(principal: str, kind: ResourceType, name: str, operations, pattern=ResourcePatternType.LITERAL):
    return [AclBinding(kind, name, pattern, f"User:{principal}", "*", op, AclPermissionType.ALLOW)
            for op in operations]  # fmt: skip


def _records(batch: int) -> list[OutgoingRecord]:
    return [OutgoingRecord(value=b"v", key=b"b%d-%d" % (batch, i)) for i in range(3)]


@pytest.mark.timeout(300)
def test_only_the_jobs_principal_can_write_markers(tmp_path) -> None:
    broker = _secured_broker(tmp_path / "broker")
    bootstrap = broker.start(timeout=90).bootstrap
    try:
        admin = make_admin(bootstrap, _sasl("admin"))
        for future in admin.create_topics([NewTopic(t, 1, 1) for t in (MARKERS, OUT, OWN)]).values():
            future.result(30)
        rw = [AclOperation.WRITE, AclOperation.READ, AclOperation.DESCRIBE]
        acls = (
            _allow("driftline-job", ResourceType.TOPIC, MARKERS, rw)  # the runbook's three grants
            + _allow("driftline-job", ResourceType.TOPIC, OUT, rw)
            + _allow("driftline-job", ResourceType.TRANSACTIONAL_ID, "driftline.",
                     [AclOperation.WRITE, AclOperation.DESCRIBE], ResourcePatternType.PREFIXED)
            + _allow("mallory", ResourceType.TOPIC, OWN, [AclOperation.WRITE, AclOperation.DESCRIBE])
        )  # fmt: skip
        for future in admin.create_acls(acls).values():
            future.result(30)
        # create_acls returns once the controller has the bindings; the broker's authorizer
        # applies them when it replays the metadata, a moment later. Until then the job's
        # principal does not see its topics and would try (and be refused) to create them
        job_admin = make_admin(bootstrap, _sasl("driftline-job"))
        wait_until(lambda: {MARKERS, OUT} <= set(job_admin.list_topics(timeout=10).topics), 60,
                   "the broker to apply the job's ACLs")  # fmt: skip

        def job_writer() -> TransactionalBatchWriter:
            return TransactionalBatchWriter(bootstrap=bootstrap, topic=OUT, markers_topic=MARKERS,
                                            name="demo/payments/dlq", settings=_sasl("driftline-job"))  # fmt: skip

        assert job_writer().write(0, _records(0)) == 3

        # mallory is a working principal: her own topic takes her records ...
        delivered: dict = {}
        mallory = Producer({"bootstrap.servers": bootstrap, **_sasl("mallory"), "acks": "all"})
        mallory.produce(OWN, b"hers", on_delivery=lambda err, m: delivered.setdefault(m.topic(), err))
        # ... but a marker saying batch 1 is committed (the job would skip its replay) is refused
        forged = json.dumps({"batch_id": 1}).encode()
        mallory.produce(
            MARKERS,
            forged,
            key=b"demo/payments/dlq",
            on_delivery=lambda err, m: delivered.setdefault(m.topic(), err),
        )
        assert mallory.flush(30) == 0
        assert set(delivered) == {OWN, MARKERS} and delivered[OWN] is None
        assert (
            delivered[MARKERS] is not None
            and delivered[MARKERS].code() == KafkaError.TOPIC_AUTHORIZATION_FAILED
        )

        # nor can she take the writer's transactional.id over (fencing the job, writing in its name)
        thief = Producer({"bootstrap.servers": bootstrap, **_sasl("mallory"),
                          "transactional.id": "driftline.demo/payments/dlq"})  # fmt: skip
        with pytest.raises(KafkaException) as refused:
            thief.init_transactions(30)
        assert refused.value.args[0].code() == KafkaError.TRANSACTIONAL_ID_AUTHORIZATION_FAILED

        # the job's restarted writer still sees batch 0 as its last: batch 1 is written, not skipped
        restarted = job_writer()
        assert restarted.committed_batch == 0
        assert restarted.write(1, _records(1)) == 3
    finally:
        broker.stop()
