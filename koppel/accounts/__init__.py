"""Accounts of the web app: users and roles, signing in, sessions, API tokens.

The rules live here, beside the store, so the web app and the command line (`koppel user
create`) share them: argon2id passwords, rate-limited sign-in, server-side sessions with
timeouts, hashed tokens, one admin at least per workspace, and an audit entry per change.
"""
