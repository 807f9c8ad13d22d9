import string
from dataclasses import replace
from hypothesis import given, settings, HealthCheck, strategies as st
from tests.unit.test_factcheck import requests
from shared.offline import OfflineDrafter
from shared.factcheck import check_draft

wild = st.text(alphabet=string.printable + "€éà°«»’\u00a0", max_size=30)

@settings(max_examples=6000, deadline=None, suppress_health_check=list(HealthCheck), database=None)
@given(requests(), wild, wild)
def test_stress(req, a, b):
    req = replace(req, contact_name=a, business_name=b)
    d = OfflineDrafter().draft(req)
    assert len(d.body) <= req.max_chars
    assert check_draft(d.body, req) == [], (d.body, req)
