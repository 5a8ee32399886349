"""The system service: public health and (later) authenticated deep status."""
