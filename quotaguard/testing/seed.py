"""The demo world: one open-plan IBM instance and one Braket QPU with a small spending limit.

Used by ``quotaguard demo`` and ``quotaguard emulator``; handy in your own tests too.
"""

from __future__ import annotations

from decimal import Decimal

import attrs

from quotaguard.testing.emulator import Emulator

__all__ = ["DemoSeed", "seed_demo"]


@attrs.frozen
class DemoSeed:
    api_key: str = attrs.field(repr=False)
    service_crn: str
    backend: str
    device_arn: str
    spending_limit: Decimal
    region: str = "us-east-1"
    aws_access_key_id: str = "AKIDEMULATOR"
    #: The emulator's own, not a secret; registered, so Braket signatures are verified.
    aws_secret_access_key: str = attrs.field(default="emulator-secret", repr=False)

    def environment(self, url: str) -> dict[str, str]:
        """The variables that point quotaguard, qiskit-ibm-runtime and boto3 at the emulator."""
        return {
            "IBMCLOUD_API_KEY": self.api_key,
            "QUOTAGUARD_IBM_SERVICE_CRN": self.service_crn,
            "QUOTAGUARD_IBM_URL": f"{url}/api",
            "IAM_URL": url,
            "AWS_ENDPOINT_URL_BRAKET": url,
            "AWS_REGION": self.region,
            "AWS_DEFAULT_REGION": self.region,  # what boto3 and botocore read
            "AWS_ACCESS_KEY_ID": self.aws_access_key_id,
            "AWS_SECRET_ACCESS_KEY": self.aws_secret_access_key,
        }


def seed_demo(emu: Emulator, *, spending_limit: Decimal = Decimal("50")) -> DemoSeed:
    seed = DemoSeed(
        api_key="demo-api-key",
        service_crn="crn:v1:bluemix:public:quantum-computing:us-east:a/demo::instance-open",
        backend="ibm_demo",
        device_arn="arn:aws:braket:us-east-1::device/qpu/ionq/Forte-1",
        spending_limit=spending_limit,
    )
    emu.ibm.add_api_key(seed.api_key, "demo")
    emu.ibm.add_instance(seed.service_crn, plan_id="open", backends=[seed.backend])
    emu.braket.add_credentials(seed.aws_access_key_id, seed.aws_secret_access_key)
    emu.braket.add_spending_limit(seed.device_arn, spending_limit)
    return seed
