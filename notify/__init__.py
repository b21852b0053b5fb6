"""Notifications to users: the console's notification list and Web Push (VAPID) to phones, used by alerts, calendars, automation and the phone (issues 17, 19, 20)."""
