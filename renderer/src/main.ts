import { mount } from 'svelte';
import App from './App.svelte';
import { connect } from './lib/client.ts';

const { client, mode } = connect();
mount(App, { target: document.getElementById('app')!, props: { client, mode } });
