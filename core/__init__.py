"""Building blocks below every app: `leads`, `crm` and `capi` may import `core`, and `core`
imports none of them."""
