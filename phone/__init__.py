"""The rep's phone as a field device: GPS from the PWA, the day's stops, attachments, customer signature and the signed service report (issue 20)."""
