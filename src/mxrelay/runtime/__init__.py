"""The composition root: which stages run for the settings, and how each is built and wired.

`app.py` only orders them (start in order, stop in reverse within the shutdown deadline). The
package exports nothing itself: the delivery process imports only the modules it runs, so that
it never loads the Graph transport.
"""
