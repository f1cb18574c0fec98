"""Pure decisions from a compiled policy: how a call is routed, what a mail or a deposit gets."""
