import { mount } from 'svelte';
import App from './App.svelte';
import { connect } from './lib/client.ts';
import { applyTheme, storedTheme } from './lib/theme.ts';
import './styles/global.css';

// The theme first, so the first paint is already in the right colours.
applyTheme(storedTheme());
const { client, mode, connection } = connect();
mount(App, { target: document.getElementById('app')!, props: { client, mode, connection } });
