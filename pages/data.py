"""data page (placeholder until its issue lands)."""
import streamlit as st

st.title("Data")
st.info("Coming soon.")
