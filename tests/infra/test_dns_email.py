"""DNS and e-mail: with a domain and a hosted zone id in config, the API's alias record,
the certificate's validation record, and the sender's domain identity with its DKIM
records; without a zone, none of them (the operator creates DNS)."""

from __future__ import annotations

import pytest

from offline.evaluate import evaluate

RECORD = "aws:route53/record:Record"
ZONE = "Z0123456789ABCDEFGHIJ"


@pytest.fixture(scope="module")
def zoned():
    return evaluate("staging", overrides={"hostedZoneId": ZONE, "certificateArn": ""})


def test_the_api_domain_gets_an_alias_to_its_regional_endpoint(zoned):
    domain = zoned.one("aws:apigatewayv2/domainName:DomainName")
    alias = zoned.one(RECORD, type="A")
    assert alias.inputs["zoneId"] == ZONE and alias.inputs["name"] == domain.inputs["domainName"]
    [target] = alias.inputs["aliases"]
    configuration = domain.state["domainNameConfiguration"]
    assert target["name"] == configuration["targetDomainName"]
    assert target["zoneId"] == configuration["hostedZoneId"]


def test_a_requested_certificate_is_validated_through_the_zone(zoned):
    certificate = zoned.one("aws:acm/certificate:Certificate")
    [option] = certificate.state["domainValidationOptions"]
    record = zoned.one(RECORD, type="CNAME", name=option["resourceRecordName"])
    assert record.inputs["records"] == [option["resourceRecordValue"]]
    validation = zoned.one("aws:acm/certificateValidation:CertificateValidation")
    assert validation.inputs["validationRecordFqdns"] == [record.state["fqdn"]]


def test_the_sender_domain_is_an_ses_identity_with_its_three_dkim_records(zoned):
    sender = zoned.one("aws:sesv2/emailIdentity:EmailIdentity", emailIdentity="staging.listbackup.ai")
    assert sender.inputs["dkimSigningAttributes"]["nextSigningKeyLength"] == "RSA_2048_BIT"
    tokens = sender.state["dkimSigningAttributes"]["tokens"]
    records = {r.inputs["name"]: r.inputs["records"] for r in zoned.of_type(RECORD)
               if r.inputs["name"].endswith("._domainkey.staging.listbackup.ai")}
    assert records == {f"{t}._domainkey.staging.listbackup.ai": [f"{t}.dkim.amazonses.com"] for t in tokens}
    assert all(r.inputs["zoneId"] == ZONE for r in zoned.of_type(RECORD))


def test_without_a_zone_no_record_is_created(program):
    assert program.of_type(RECORD) == []
    assert [i.inputs["emailIdentity"] for i in program.of_type("aws:sesv2/emailIdentity:EmailIdentity")] \
        == [program.one("aws:sesv2/emailIdentity:EmailIdentity").inputs["emailIdentity"]]


def test_a_zone_without_a_domain_is_refused():
    with pytest.raises(Exception, match="hostedZoneId"):
        evaluate("dev", overrides={"hostedZoneId": ZONE, "domain": ""})
