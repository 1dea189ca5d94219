"""The SOAP adapter: a WSDL per pipeline, WS-Security, hardened XML (see plugin.py)."""
