"""Losses (Eq. 3) and, with the training issue, the trainer and in-the-loop SMPLify."""
