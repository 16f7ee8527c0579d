"""One StripeWebhook rotated under steady subscription traffic, and counted: the run itself
(run.py), the traffic through Stripe (traffic.py), what Stripe said of the endpoints over time
(timeline.py) and the books of deliveries against what the receiver applied (tally.py).
Shared by tests/rotation and the rotation benchmark."""
