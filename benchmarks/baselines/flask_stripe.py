"""Configuration (3): the shape Stripe's documentation suggests, Flask + construct_event.

Run under gunicorn (sync worker, the default). It verifies and builds the Stripe event
object, then answers; it stores nothing, so it does less than (2) and (4) do.

Environment: FLASK_STRIPE_SECRET (the `whsec_...` signing secret).
"""

from __future__ import annotations

import os

import stripe
from flask import Flask, jsonify, request
from flask.typing import ResponseReturnValue

SECRET = os.environ["FLASK_STRIPE_SECRET"]
app = Flask(__name__)


@app.post("/webhooks/<namespace>/<name>")
def receive(namespace: str, name: str) -> ResponseReturnValue:
    """When Stripe posts an event, verify it and read its subscription."""
    try:
        event = stripe.Webhook.construct_event(
            request.get_data(), request.headers.get("Stripe-Signature"), SECRET
        )
    except ValueError:
        return jsonify(error="invalid payload"), 400
    except stripe.SignatureVerificationError:
        return jsonify(error="invalid signature"), 400
    if event.type == "customer.subscription.updated":
        subscription = event.data.object
        _ = (subscription.id, subscription.status)
    return jsonify(received=True)
