"""Engagement: e-mail (embedded SMTP/IMAP servers, sending, IMAP sync, threading, tracking, consent), SMS and web chat, one conversation model and the inbox (issue 18)."""
